#![allow(dead_code)]

pub mod bench;
pub mod payloads;
pub mod pki;
