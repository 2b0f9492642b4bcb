import XCTest

@testable import Storage

final class S3XMLTests: XCTestCase {
    func testListingWithDeclarationNamespaceAndEntities() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
              <Contents><Key>a/b&amp;c</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag></Contents>
              <Contents><Key>d</Key><Size>0</Size><Owner/></Contents>
              <IsTruncated>true</IsTruncated><NextContinuationToken>t&#x2F;1&#47;</NextContinuationToken>
            </ListBucketResult>
            """
        let root = try S3XMLElement.parse(Array(xml.utf8))
        XCTAssertEqual(root.name, "ListBucketResult")
        XCTAssertEqual(root.children("Contents").compactMap { $0["Key"] }, ["a/b&c", "d"])
        XCTAssertEqual(root.children("Contents").first?["ETag"], "\"abc\"")
        XCTAssertEqual(root["IsTruncated"], "true")
        XCTAssertEqual(root["NextContinuationToken"], "t/1/")
    }

    func testMalformedDocumentsAreRefused() {
        for bad in ["", "<a>", "<a></b>", "<a>&bogus;</a>", "<a x=1></a>", "<a></a><b/>", "text"] {
            XCTAssertThrowsError(try S3XMLElement.parse(Array(bad.utf8)), bad)
        }
    }

    /// `LastModified` in listings (what the purge of stale multipart uploads goes by):
    /// AWS writes milliseconds, other stores may not.
    func testListingTimestampsWithAndWithoutFractions() throws {
        let withMilliseconds = try XCTUnwrap(S3Driver.parseTimestamp("2026-11-29T08:26:43.719Z"))
        XCTAssertEqual(withMilliseconds.timeIntervalSince1970, 1_795_940_803.719, accuracy: 0.0005)
        XCTAssertEqual(S3Driver.parseTimestamp("2026-11-29T08:26:43Z")?.timeIntervalSince1970, 1_795_940_803)
        XCTAssertNil(S3Driver.parseTimestamp("yesterday"))
        XCTAssertNil(S3Driver.parseTimestamp(""))
    }

    func testEscapingForRequestBodies() {
        XCTAssertEqual(S3XMLElement.escape("\"a\"<&>"), "\"a\"&lt;&amp;&gt;")
    }

    func testTextWithCombiningMarksIsEscapedAndReadByScalar() throws {
        // A "<" or ";" followed by a combining mark is one Character, equal to neither:
        // escaping and entity decoding work on Unicode scalars (found by fuzzing).
        for text in ["<\u{0594}x", "a&\u{0301}b>", "&lt;\u{0594}", "\u{05D0}<>&;\u{0300}"] {
            let document = "<Key>" + S3XMLElement.escape(text) + "</Key>"
            XCTAssertFalse(document.dropFirst(5).dropLast(6).unicodeScalars.contains("<"), document)
            XCTAssertEqual(try S3XMLElement.parse(Array(document.utf8)).text, text)
        }
    }
}
