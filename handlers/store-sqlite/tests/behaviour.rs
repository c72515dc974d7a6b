//! The shared store behaviour suite (keygate_testkit) on the SQLite store.

/// A private in-memory database per test.
mod in_memory {
    keygate_testkit::store_behaviour_tests!(async {
        keygate_store_sqlite::SqliteStore::open_in_memory().expect("in-memory store")
    });
}

/// A database file (WAL, synchronous FULL) in a temporary directory per test, removed afterwards.
mod file_backed {
    use keygate_store_sqlite::SqliteStore;
    use keygate_testkit::doubles::Guarded;

    async fn file_store() -> Guarded<SqliteStore> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path()).expect("file store");
        Guarded::new(store, dir)
    }

    keygate_testkit::store_behaviour_tests!(file_store());
}
