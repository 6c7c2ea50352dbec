#![allow(dead_code)]

pub mod payloads;
pub mod pki;
