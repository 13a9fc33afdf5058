//! The command-line plumbing that the `stemscribe` binary and the developers' `stemscribe-lab`
//! share: loading the engine on the hardware asked for, reading inputs, progress bars, and
//! writing outputs through `.partial` files.

pub mod io;
