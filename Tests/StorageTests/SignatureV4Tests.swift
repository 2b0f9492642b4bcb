import Foundation
import XCTest

@testable import Storage

/// Signature Version 4 against the examples AWS publishes: the signature test suite
/// (service `service`, 2015-08-30) and the worked examples of the S3 API reference
/// (bucket `examplebucket`, 2013-05-24).
final class SignatureV4Tests: XCTestCase {
    private let suite = SignatureV4(
        credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service"
    )
    private let s3 = SignatureV4(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1"
    )
    private let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    private let s3Host = ("host", "examplebucket.s3.amazonaws.com")

    private func authorization(_ headers: [(String, String)]) -> String? {
        headers.first { $0.0 == "authorization" }?.1
    }

    func testSuiteGetVanilla() {
        let signed = suite.signature(
            method: "GET", path: "/", query: [], headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payloadHash: SignatureV4.emptyPayloadHash, timestamp: "20150830T123600Z")
        XCTAssertEqual(
            signed.canonicalRequest,
            """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        XCTAssertEqual(signed.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    func testSuiteQueryIsSortedByKey() {
        let signed = suite.signature(
            method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")],
            headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payloadHash: SignatureV4.emptyPayloadHash, timestamp: "20150830T123600Z")
        XCTAssertEqual(signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2], "Param1=value1&Param2=value2")
        XCTAssertEqual(signed.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    func testS3GetObjectWithRange() {
        let headers = s3.authorizationHeaders(
            method: "GET", path: "/test.txt", query: [], headers: [s3Host, ("Range", "bytes=0-9")],
            payloadHash: SignatureV4.emptyPayloadHash, date: s3Date)
        XCTAssertEqual(
            authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        XCTAssertTrue(headers.contains { $0 == ("x-amz-date", "20130524T000000Z") })
    }

    func testS3PutObjectEncodesThePathAndSignsThePayload() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let payloadHash = SignatureV4.sha256Hex(body)
        XCTAssertEqual(payloadHash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let headers = s3.authorizationHeaders(
            method: "PUT", path: "/test$file.text", query: [],
            headers: [s3Host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: payloadHash, date: s3Date
        )
        XCTAssertEqual(
            authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        )
    }

    func testS3GetBucketLifecycleSignsAnEmptyQueryValue() {
        let headers = s3.authorizationHeaders(
            method: "GET", path: "/", query: [("lifecycle", "")], headers: [s3Host],
            payloadHash: SignatureV4.emptyPayloadHash, date: s3Date)
        XCTAssertTrue(
            authorization(headers)?.hasSuffix("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543") == true)
    }

    func testS3ListObjectsSortsTheQuery() {
        let headers = s3.authorizationHeaders(
            method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [s3Host],
            payloadHash: SignatureV4.emptyPayloadHash, date: s3Date)
        XCTAssertTrue(
            authorization(headers)?.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true)
    }

    func testS3PresignedGet() {
        let query = s3.presignedQuery(
            method: "GET", path: "/test.txt", query: [], host: "examplebucket.s3.amazonaws.com", date: s3Date, expires: 86400)
        XCTAssertEqual(query.first { $0.0 == "X-Amz-Signature" }?.1, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        XCTAssertEqual(query.first { $0.0 == "X-Amz-Credential" }?.1, "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request")
    }

    func testHeaderValuesAreTrimmedAndInnerBlanksFolded() {
        let headers = SignatureV4.canonicalHeaders([("X-Amz-Meta-A", "  one \t two   three\t"), ("x-amz-meta-a", "four"), ("Host", "h")])
        XCTAssertEqual(headers.canonical, "host:h\nx-amz-meta-a:one two three,four\n")
        XCTAssertEqual(headers.signed, "host;x-amz-meta-a")
    }

    func testEncodingKeepsOnlyUnreservedCharacters() {
        XCTAssertEqual(SignatureV4.encode("a b/c~d_e.f-g+h=i&"), "a%20b%2Fc~d_e.f-g%2Bh%3Di%26")
        XCTAssertEqual(SignatureV4.encode("a b/c", keepingSlashes: true), "a%20b/c")
        XCTAssertEqual(SignatureV4.encode("é"), "%C3%A9")
    }

    func testSecretNeverAppearsInDescriptions() {
        let credentials = S3Credentials(accessKeyID: "AKID", secretAccessKey: "very-secret")
        XCTAssertFalse(String(describing: credentials).contains("very-secret"))
        XCTAssertFalse(String(reflecting: credentials).contains("very-secret"))
    }
}
