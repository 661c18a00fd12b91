//! What a user watches a job by: the job report (`mr-report.json`, also the
//! status page's JSON), the status page itself, the progress display on the
//! terminal, the timeline picture and the Prometheus metrics. All are built from one snapshot of
//! the scheduler, [`report::Report`], so they never disagree.

pub mod metrics;
pub mod progress;
pub mod report;
pub mod status;
pub mod timeline;
