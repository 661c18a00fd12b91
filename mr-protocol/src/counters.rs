//! The job's counters, part of the wire: every attempt reports them and
//! the journal records them. Declared from one list by a macro, so fields,
//! display names and their sum can never disagree.

use serde::{Deserialize, Serialize};

/// Declares [`Counters`] from one list, so its fields, their display names
/// and their sum can never disagree.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $field:ident => $label:literal,)*) => {
        /// What an attempt counted, as Hadoop's job counters. A job's
        /// counters are the sums over its accepted attempts.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Counters the app defined (`Emit::count`, `Values::count`), by name.
            pub app: std::collections::BTreeMap<String, u64>,
        }

        impl Counters {
            /// Adds `other` into `self`.
            /// Saturating: counters come from workers and journals, and a
            /// sum that overflows must not panic or wrap.
            pub fn add(&mut self, other: &Counters) {
                $(self.$field = self.$field.saturating_add(other.$field);)*
                for (k, v) in &other.app {
                    let sum = self.app.entry(k.clone()).or_default();
                    *sum = sum.saturating_add(*v);
                }
            }

            /// Takes `other` out of `self` (an accepted output that was
            /// lost, or counters replaced). Saturating, like [`Self::add`];
            /// an app counter that reaches zero is dropped.
            pub fn sub(&mut self, other: &Counters) {
                $(self.$field = self.$field.saturating_sub(other.$field);)*
                for (k, v) in &other.app {
                    if let Some(sum) = self.app.get_mut(k) {
                        *sum = sum.saturating_sub(*v);
                        if *sum == 0 {
                            self.app.remove(k);
                        }
                    }
                }
            }

            /// (display name, value) of every built-in counter, in a fixed
            /// order, then the app's as `app: <name>`.
            pub fn rows(&self) -> Vec<(String, u64)> {
                let mut rows: Vec<(String, u64)> = vec![$(($label.to_string(), self.$field),)*];
                rows.extend(self.app.iter().map(|(k, v)| (format!("app: {k}"), *v)));
                rows
            }
        }
    };
}

counters! {
    /// Input bytes mapped (after aligning splits to lines).
    input_bytes => "input bytes",
    /// Input records (lines; files for whole-file apps) mapped.
    input_records => "input records",
    /// Pairs the app's map emitted.
    map_output_records => "map output records",
    /// Pairs fed to combining (0 for apps without a combiner).
    combine_input_records => "combine input records",
    /// Pairs left after combining, as written to the intermediate file.
    combine_output_records => "combine output records",
    /// Size of the intermediate file.
    map_output_bytes => "map output bytes",
    /// Bytes written to spill runs (0 when the task fit in memory).
    spilled_bytes => "spilled bytes",
    /// Bad records skipped (`--skip-bad-records`), in map or reduce.
    skipped_records => "skipped records",
    /// Distinct keys reduce tasks met.
    reduce_input_groups => "reduce input groups",
    /// Pairs reduce tasks read.
    reduce_input_records => "reduce input records",
    /// Lines written to `mr-out-*`.
    output_records => "output records",
    /// Bytes written to `mr-out-*`.
    output_bytes => "output bytes",
    /// Input bytes a map task fetched from the coordinator (it could not
    /// read the file where it runs).
    input_fetched_bytes => "input bytes fetched",
    /// Intermediate bytes reduce tasks fetched from other workers.
    shuffle_bytes => "shuffle bytes fetched",
    /// Wall time reduce tasks spent fetching, in milliseconds.
    shuffle_millis => "shuffle fetch ms",
    /// Output bytes reduce tasks uploaded to the coordinator.
    uploaded_bytes => "output bytes uploaded",
    /// Bytes map tasks read from the object store (their splits, the
    /// lines crossing their ends, compressed objects as stored).
    store_read_bytes => "object bytes read",
    /// Output bytes reduce tasks uploaded to the object store.
    store_written_bytes => "object bytes written",
}

#[cfg(test)]
mod tests {
    use super::Counters;

    #[test]
    fn sums_saturate_rather_than_overflow() {
        // A worker (or a damaged journal) may report any value.
        let mut a = Counters {
            input_records: u64::MAX - 1,
            ..Counters::default()
        };
        a.app.insert("x".into(), u64::MAX);
        let mut b = Counters {
            input_records: 5,
            ..Counters::default()
        };
        b.app.insert("x".into(), 1);
        a.add(&b);
        assert_eq!(a.input_records, u64::MAX);
        assert_eq!(a.app["x"], u64::MAX);
    }
}
