@testable import RegistryAPI
import XCTest

/// Query strings as clients send them: `+` for spaces, `%XX` escapes of UTF-8 bytes;
/// a broken escape leaves the text as it came rather than failing the request.
final class QueryParametersTests: XCTestCase {
    func testEscapesPlusAndRepeatedKeys() {
        let query = QueryParameters("digest=sha256%3Aab&from=team%2Fapp&n=a+b&scope=x&scope=y&empty=&flag&name=caf%C3%A9")
        XCTAssertEqual(query["digest"], "sha256:ab")
        XCTAssertEqual(query["from"], "team/app")
        XCTAssertEqual(query["n"], "a b")
        XCTAssertEqual(query.all("scope"), ["x", "y"])
        XCTAssertEqual(query["empty"], "")
        XCTAssertEqual(query["flag"], "")
        XCTAssertEqual(query["name"], "café")
        XCTAssertNil(query["missing"])
    }

    func testBrokenEscapesAreKeptAsText() {
        XCTAssertEqual(QueryParameters("a=%zz")["a"], "%zz")
        XCTAssertEqual(QueryParameters("a=50%")["a"], "50%")
        XCTAssertEqual(QueryParameters("a=%4")["a"], "%4")
        XCTAssertEqual(QueryParameters("a=%FF%FE")["a"], "%FF%FE", "not UTF-8 once decoded")
        XCTAssertEqual(QueryParameters("a=%00")["a"], "\u{0}")
    }
}
