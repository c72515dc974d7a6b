//! The suite against the reference model: proves the suite itself is consistent with the port.

keygate_testkit::store_behaviour_tests!(async { keygate_testkit::doubles::MemoryStore::default() });
