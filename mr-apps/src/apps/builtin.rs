//! The registry of apps built into the binaries, by name.

use super::{grep::Grep, indexer::Indexer, sort::Sort, testapps, wc::WordCount};
use crate::App;

/// Names of the built-in apps, in the order `--help` lists them.
pub fn builtin_names() -> &'static [&'static str] {
    &[
        "wc",
        "indexer",
        "sort",
        "grep",
        "nocrash",
        "crash",
        "mtiming",
        "rtiming",
        "jobcount",
        "early_exit",
        "poison",
    ]
}

/// The built-in app called `name`, if there is one.
/// Not yet configured: see [`crate::resolve`].
pub fn builtin(name: &str) -> Option<Box<dyn App>> {
    let app: Box<dyn App> = match name {
        "wc" => Box::new(WordCount),
        "indexer" => Box::new(Indexer),
        "sort" => Box::new(Sort),
        "grep" => Box::<Grep>::default(),
        "nocrash" => Box::new(testapps::NoCrash),
        "crash" => Box::new(testapps::Crash),
        "mtiming" => Box::new(testapps::MTiming),
        "rtiming" => Box::new(testapps::RTiming),
        "jobcount" => Box::new(testapps::JobCount::default()),
        "early_exit" => Box::new(testapps::EarlyExit),
        "poison" => Box::new(testapps::Poison),
        _ => return None,
    };
    Some(app)
}
