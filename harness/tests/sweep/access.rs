//! The `access` class catches its deliberate defects.
