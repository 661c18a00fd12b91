//! The bundled apps: word count ([`wc`]), inverted index ([`indexer`]), the
//! sort benchmark's [`sort`], the paper's [`grep`], the
//! lab's test apps ([`testapps`]), streaming apps made of two shell commands
//! ([`streaming`]), and the table of built-in names ([`builtin`]).

pub mod builtin;
pub mod grep;
pub mod indexer;
pub mod sort;
pub mod streaming;
pub mod testapps;
pub mod wc;
