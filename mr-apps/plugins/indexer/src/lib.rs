//! The `indexer` inverted-index app as a plugin: `mrworker target/release/libindexer.so`.

mr_apps::export_app!(mr_apps::apps::indexer::Indexer);
