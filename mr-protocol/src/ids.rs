//! Ids of workers, tasks and attempts: newtypes, so a map task number can
//! never be passed where an attempt id is expected. Each prints with its
//! kind (`map-3`, `attempt-17`), as logs, reports and the timeline name them.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_newtype!(
    /// A registered worker process, numbered by the coordinator.
    WorkerId(u64), "worker-"
);
id_newtype!(
    /// One execution of a task; unique across the whole job, so a late or
    /// duplicate report can always be told apart from the current one.
    AttemptId(u64), "attempt-"
);

impl AttemptId {
    /// Where the ids of outputs taken from a cache (`--cache`) start: no
    /// coordinator incarnation reaches this range (`incarnation << 32`).
    const CACHED: u64 = 0xffff_ffff << 32;

    /// The id under which task number `task`'s output taken from the
    /// cache is placed.
    pub fn cached(task: u32) -> AttemptId {
        AttemptId(Self::CACHED | u64::from(task))
    }

    /// Whether this names an output taken from the cache: made for the
    /// same bytes under whatever task number the split had then, so its
    /// run file may name another map.
    pub fn is_cached(self) -> bool {
        self.0 >= Self::CACHED
    }
}
id_newtype!(
    /// Map task `m`, which maps split `m` of the plan.
    MapTaskId(u32), "map-"
);
id_newtype!(
    /// Reduce task `r`, which produces `mr-out-<r>`.
    ReduceTaskId(u32), "reduce-"
);
