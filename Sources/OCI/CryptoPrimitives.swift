import CLibcrypto

/// Lowercase hexadecimal, as digests, signatures and key files spell bytes.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// HMAC-SHA256 over libcrypto: token signatures and AWS Signature Version 4.
public enum HMACSHA256 {
    public static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = key.withUnsafeBufferPointer { key in
            message.withUnsafeBufferPointer { data in
                HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), data.baseAddress, data.count, &output, &length)
            }
        }
        precondition(result != nil, "HMAC-SHA256 failed")
        return Array(output.prefix(Int(length)))
    }
}
