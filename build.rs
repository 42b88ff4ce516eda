//! Compiles every `bpf/*.bpf.c` into a libbpf-rs skeleton in OUT_DIR.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Without gcc-multilib, <asm/types.h> lives only under the multiarch include dir.
    let multiarch = Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| format!("-I/usr/include/{}", s.trim()))
        .unwrap_or_else(|| "-I/usr/include/x86_64-linux-gnu".into());
    // Tests that build BPF objects of their own need the same flag.
    println!("cargo:rustc-env=XDPCTL_MULTIARCH_INCLUDE={multiarch}");

    for dir in ["bpf", "include"] {
        println!("cargo:rerun-if-changed={dir}");
        for entry in fs::read_dir(dir).expect("source dir is readable") {
            let path = entry.expect("dir entry").path();
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    let mut sources: Vec<PathBuf> = fs::read_dir("bpf")
        .expect("bpf/ is readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();

    for src in sources {
        let stem = stem(&src);
        SkeletonBuilder::new()
            .source(&src)
            .obj(out.join(format!("{stem}.bpf.o")))
            .clang_args([OsStr::new("-Iinclude"), OsStr::new(&multiarch), OsStr::new("-Wall")])
            .build_and_generate(out.join(format!("{stem}.skel.rs")))
            .unwrap_or_else(|e| panic!("building skeleton for {}: {e:#}", src.display()));
    }
}

/// `bpf/xdp_prog_kern.bpf.c` -> `xdp_prog_kern`
fn stem(path: &Path) -> String {
    let name = path.file_name().and_then(OsStr::to_str).expect("utf-8 file name");
    name.trim_end_matches(".bpf.c").to_string()
}
