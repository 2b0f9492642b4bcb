/// The conditions the collection's queries share, in the SQL both backends read alike:
/// one text, so what "collectable" means cannot drift between SQLite and PostgreSQL.
/// Each names the rows it speaks of by the alias its queries use (`m` a manifest, `rb` a
/// repository link).
enum CollectionConditions {
    /// A manifest of repository `m.repository_id` that some index in the same repository lists.
    static let isChildOfIndex = """
        EXISTS (SELECT 1 FROM manifest_references r JOIN manifests parent ON parent.id = r.manifest_id
                WHERE r.kind = 'manifest' AND r.digest = m.digest AND parent.repository_id = m.repository_id)
        """
    static let isTagged = "EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)"
    static let hasLiveSubject = """
        (m.subject_digest IS NOT NULL AND EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))
        """
    static let hasDeadSubject = """
        (m.subject_digest IS NOT NULL AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))
        """
    /// A link whose blob no manifest of the same repository references.
    static let linkIsUnreferenced = """
        NOT EXISTS (SELECT 1 FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
                    WHERE m.repository_id = rb.repository_id AND mr.digest = rb.digest)
        """
    /// A manifest a collection may delete: untagged, no index's child, no live subject.
    static let manifestIsCollectable = "NOT \(isTagged) AND NOT \(isChildOfIndex) AND NOT \(hasLiveSubject)"
    /// A referrer whose subject is gone, untagged and no index's child.
    static let referrerIsOrphaned = "\(hasDeadSubject) AND NOT \(isTagged) AND NOT \(isChildOfIndex)"
}
