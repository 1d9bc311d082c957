//! The `limits` class catches its deliberate defects.
