//! skim's core: everything but the command line.
