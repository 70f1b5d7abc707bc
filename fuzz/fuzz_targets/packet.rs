#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubenat_fuzz::packet::run(data));
