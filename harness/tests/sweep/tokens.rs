//! The `tokens` class catches its deliberate defects.
