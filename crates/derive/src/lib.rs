//! #[derive(Tree)] (being written).
