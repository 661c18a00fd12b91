//! The `wc` word-count app as a plugin: `mrworker target/release/libwc.so`.

mr_apps::export_app!(mr_apps::apps::wc::WordCount);
