//! Shared fakes and helpers, one file per fake.
