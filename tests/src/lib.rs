//! Lab harness for end-to-end tests (filled in below).
