//! The `inputs` class catches its deliberate defects.
