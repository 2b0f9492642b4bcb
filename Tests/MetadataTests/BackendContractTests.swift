import Foundation
import Logging
import OCI
import RegistryTesting
import XCTest

@testable import Metadata

/// The contract on SQLite: a file in a temporary directory.
final class SQLiteMetadataContractTests: MetadataStoreContract {
    private var directory: String?

    override func makeStore(instance: String) async throws -> any MetadataBackend {
        let directory = NSTemporaryDirectory() + "/registryd-contract-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        return try SQLiteMetadataStore(path: directory + "/registry.db", instance: instance)
    }

    override func removeStores() async throws {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    // Linux's XCTest lists a subclass's inherited tests only when it declares one itself.
    func testTheBackendIsSQLite() {
        XCTAssertTrue(store.backendDescription.hasPrefix("SQLite "))
    }
}

/// The contract on PostgreSQL 15: a database of its own on the test server.
final class PostgresMetadataContractTests: MetadataStoreContract {
    private var databases: [PostgresLocation] = []

    override func makeStore(instance: String) async throws -> any MetadataBackend {
        let location = try await TestPostgres.makeDatabase()
        databases.append(location)
        return try await PostgresMetadataStore(location: location, instance: instance)
    }

    override func removeStores() async throws {
        for location in databases { try await TestPostgres.dropDatabase(location) }
        databases = []
    }

    func testTheBackendIsPostgresAndNamesNoPassword() throws {
        let description = store.backendDescription
        XCTAssertTrue(description.hasPrefix("PostgreSQL postgres://"), description)
        let password = try XCTUnwrap(TestPostgres.settings()["PGPASSWORD"])
        XCTAssertFalse(description.contains(password))
    }
}
