//! One file per tool: argument parsing, execution and the documentation agents see.
