import XCTest

@testable import HTTPTransport

/// Query strings as clients send them: `%XX` escapes of UTF-8 bytes, `+` as itself (ORAS
/// sends media types unescaped); a broken escape leaves the text as it came rather than
/// failing the request.
final class QueryParametersTests: XCTestCase {
    func testEscapesPlusAndRepeatedKeys() {
        let query = QueryParameters("digest=sha256%3Aab&from=team%2Fapp&n=a+b&scope=x&scope=y&empty=&flag&name=caf%C3%A9")
        XCTAssertEqual(query["digest"], "sha256:ab")
        XCTAssertEqual(query["from"], "team/app")
        XCTAssertEqual(query["n"], "a+b", "a plus is a plus: no value of this API holds a space")
        XCTAssertEqual(query.all("scope"), ["x", "y"])
        XCTAssertEqual(query["empty"], "")
        XCTAssertEqual(query["flag"], "")
        XCTAssertEqual(query["name"], "café")
        XCTAssertNil(query["missing"])
    }

    func testAMediaTypeKeepsItsPlusEscapedOrNot() {
        XCTAssertEqual(
            QueryParameters("artifactType=application/vnd.example.sig.v1+json")["artifactType"], "application/vnd.example.sig.v1+json")
        XCTAssertEqual(
            QueryParameters("artifactType=application%2Fvnd.example.sig.v1%2Bjson")["artifactType"], "application/vnd.example.sig.v1+json")
    }

    func testBrokenEscapesAreKeptAsText() {
        XCTAssertEqual(QueryParameters("a=%zz")["a"], "%zz")
        XCTAssertEqual(QueryParameters("a=50%")["a"], "50%")
        XCTAssertEqual(QueryParameters("a=%4")["a"], "%4")
        XCTAssertEqual(QueryParameters("a=%FF%FE")["a"], "%FF%FE", "not UTF-8 once decoded")
        XCTAssertEqual(QueryParameters("a=%00")["a"], "\u{0}")
    }
}
