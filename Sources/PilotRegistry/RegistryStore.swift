public import PilotCore
public import PilotCrypto
public import PilotSQLite

/// The registry's durable state: one row per key ever registered, in
/// SQLite (WAL) under the state directory. Every change is committed
/// before the registry answers, so kill -9 loses no registration.
/// Presence is not stored: after a restart it is relearnt from heartbeats.
public final class RegistryStore {
    private let database: SQLiteConnection
    private let upsert: SQLiteStatement

    public init(path: String) throws(SQLiteError) {
        database = try SQLiteConnection(path: path)
        try database.execute("""
            CREATE TABLE IF NOT EXISTS nodes (
                public_key BLOB PRIMARY KEY,
                network INTEGER NOT NULL,
                node INTEGER NOT NULL,
                hostname TEXT NOT NULL,
                tags TEXT NOT NULL,
                endpoints TEXT NOT NULL,
                registered_at INTEGER NOT NULL,
                UNIQUE (network, node)
            );
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO meta VALUES ('schema', '1');
            """)
        upsert = try database.prepare("""
            INSERT INTO nodes (public_key, network, node, hostname, tags, endpoints, registered_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (public_key) DO UPDATE SET hostname = excluded.hostname, tags = excluded.tags, endpoints = excluded.endpoints
            """)
    }

    public func save(_ record: NodeRecord) throws(SQLiteError) {
        try upsert.run(.blob(record.publicKey.bytes), .integer(Int64(record.address.network)), .integer(Int64(record.address.node)),
                       .text(record.hostname), .text(record.tags.joined(separator: " ")),
                       .text(record.endpoints.joined(separator: " ")), .integer(record.registeredAt))
    }

    /// Every record, refusing (with the row named) anything that does not
    /// read back as it was written.
    public func loadAll() throws -> [NodeRecord] {
        try database.prepare("SELECT public_key, network, node, hostname, tags, endpoints, registered_at FROM nodes ORDER BY network, node")
            .query().map { row in
                guard row.count == 7, let keyBytes = row[0].blob, let network = row[1].integer, let node = row[2].integer,
                      let hostname = row[3].text, let tags = row[4].text, let endpoints = row[5].text, let registeredAt = row[6].integer,
                      let network16 = UInt16(exactly: network), let node32 = UInt32(exactly: node)
                else { throw RegistryStoreError("\(database.path): a row of table nodes is damaged") }
                return NodeRecord(publicKey: try PublicKey(bytes: keyBytes), address: Address(network: network16, node: node32),
                                  hostname: hostname, tags: tags.split(separator: " ").map(String.init),
                                  endpoints: endpoints.split(separator: " ").map(String.init), registeredAt: registeredAt)
            }
    }
}

public struct RegistryStoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
