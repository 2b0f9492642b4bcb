@testable import Storage
import XCTest

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

    func testEscapingForRequestBodies() {
        XCTAssertEqual(S3XMLElement.escape("\"a\"<&>"), "\"a\"&lt;&amp;&gt;")
    }
}
