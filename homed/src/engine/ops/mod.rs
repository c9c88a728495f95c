//! One file per flow a user can name. Each reads top to bottom and calls only down: into the
//! engine's parts (access, auth, state, spec, trust, records, publish, refs) and the worker.

mod change;
mod create;
mod fixate;
mod login;
mod remove;
mod suspend;
