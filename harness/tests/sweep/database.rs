//! The `database` class catches its deliberate defects.
