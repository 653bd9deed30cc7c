//! The numbers of the C ABI: `xs/dhms.h` (what the Perl glue compiles
//! against) and `ffi.rs` (what the engine answers) must agree on every
//! variant, status, info key, source kind and the cursor's start value.
//! This reads the header's enums and compares them, both ways, with the
//! names and numbers the Rust side declares.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// Strip `/* ... */` comments.
fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        match rest[i..].find("*/") {
            Some(j) => rest = &rest[i + j + 2..],
            None => panic!("unterminated comment in dhms.h"),
        }
    }
    out.push_str(rest);
    out
}

fn number(v: &str) -> i128 {
    match v {
        "UINT64_MAX" => u64::MAX as i128,
        _ => v
            .parse()
            .unwrap_or_else(|_| panic!("dhms.h: cannot read the number {v:?}")),
    }
}

/// Every enumerator of every `enum NAME { ... }` (C's rule: one more than
/// the previous unless given), and every `#define DHMS_X NUMBER`.
fn header_numbers(h: &str) -> BTreeMap<String, (String, i128)> {
    let h = strip_comments(h);
    let mut all = BTreeMap::new();
    let mut rest = h.as_str();
    while let Some(i) = rest.find("enum ") {
        rest = &rest[i + 5..];
        let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
            break;
        };
        if rest[..open].contains(';') || open > close {
            continue; // "enum x;" or a use, not a definition
        }
        let name = rest[..open].trim().to_string();
        let mut next = 0i128;
        for e in rest[open + 1..close].split(',') {
            let e = e.trim();
            if e.is_empty() {
                continue;
            }
            let (k, n) = match e.split_once('=') {
                Some((k, v)) => (k.trim(), number(v.trim())),
                None => (e, next),
            };
            assert!(
                all.insert(k.to_string(), (name.clone(), n)).is_none(),
                "{k} twice in dhms.h"
            );
            next = n + 1;
        }
        rest = &rest[close..];
    }
    for line in h.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() == 3 && w[0] == "#define" && w[1].starts_with("DHMS_") {
            all.insert(w[1].to_string(), ("#define".into(), number(w[2])));
        }
    }
    all
}

#[test]
fn header_and_engine_agree_on_every_number() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../xs/dhms.h");
    let h = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = header_numbers(&h);
    for want in [
        "dhms_variant",
        "dhms_status",
        "dhms_info_key",
        "dhms_source_kind",
    ] {
        assert!(
            header.values().any(|(e, _)| e == want),
            "dhms.h has no enum {want}: the parser or the header changed"
        );
    }
    let rust: BTreeMap<String, i128> = hashmap_shared::testing::abi_numbers().into_iter().collect();
    let mut problems = Vec::new();
    for (name, (e, n)) in &header {
        match rust.get(name) {
            None => problems.push(format!("{name} ({e} = {n} in dhms.h) has no Rust name")),
            Some(r) if r != n => problems.push(format!("{name}: {n} in dhms.h, {r} in ffi.rs")),
            _ => {}
        }
    }
    for name in rust.keys() {
        if !header.contains_key(name) {
            problems.push(format!("{name} is in ffi.rs but not in dhms.h"));
        }
    }
    assert!(
        problems.is_empty(),
        "C ABI drift:\n  {}",
        problems.join("\n  ")
    );
    // the sizes the enums must have, so that a truncated parse cannot pass
    let count = |e: &str| header.values().filter(|(x, _)| x == e).count();
    assert_eq!(count("dhms_variant"), 11);
    assert_eq!(count("dhms_status"), 7);
    assert_eq!(count("dhms_info_key"), 15);
    assert_eq!(count("dhms_source_kind"), 6);
}

#[test]
fn the_parser_follows_c_numbering() {
    let h = "enum a { X = 3, /* c, d */ Y, Z = 10 }; enum b {\n P,\n Q\n};\n#define DHMS_Q UINT64_MAX\n";
    let n = header_numbers(h);
    assert_eq!(n["X"].1, 3);
    assert_eq!(n["Y"].1, 4);
    assert_eq!(n["Z"].1, 10);
    assert_eq!(n["P"], ("b".to_string(), 0));
    assert_eq!(n["Q"].1, 1);
    assert_eq!(n["DHMS_Q"].1, u64::MAX as i128);
}

/// The struct layouts: a C program built against the header prints the
/// size of each struct and the offset and size of each field the Rust side
/// lists;
/// they must be equal. Needs the C compiler the Perl build uses (`$CC`,
/// else `cc`).
#[test]
fn header_and_engine_agree_on_every_struct_layout() {
    let layouts = hashmap_shared::testing::abi_layouts();
    assert!(layouts.len() >= 42, "the Rust side lists too little");
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"dhms.h\"\nint main(void) {\n",
    );
    for (name, _) in &layouts {
        let expr = match (name.strip_prefix("sizeof "), name.split_once('.')) {
            (Some(_), Some((t, f))) => format!("sizeof((({} *)0)->{f})", &t[7..]),
            (Some(t), None) => format!("sizeof({t})"),
            (None, Some((t, f))) => format!("offsetof({t}, {f})"),
            (None, None) => panic!("{name}: not a struct or a field"),
        };
        c.push_str(&format!(
            "    printf(\"%s %zu\\n\", \"{name}\", (size_t){expr});\n"
        ));
    }
    c.push_str("    return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("dhms-c-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, exe) = (dir.join("layout.c"), dir.join("layout"));
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let xs = concat!(env!("CARGO_MANIFEST_DIR"), "/../xs");
    let built = std::process::Command::new(&cc)
        .arg("-I")
        .arg(xs)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e} (the C compiler the Perl build needs)"));
    assert!(built.success(), "{cc} could not build the layout probe");
    let out = std::process::Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    let c_side: BTreeMap<String, usize> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let mut problems = Vec::new();
    for (name, rust) in &layouts {
        match c_side.get(name) {
            Some(c) if c == rust => {}
            c => problems.push(format!("{name}: {c:?} in C, {rust} in Rust")),
        }
    }
    assert!(
        problems.is_empty(),
        "C ABI layout drift:\n  {}",
        problems.join("\n  ")
    );
}

/// `bin/hashmap-shared` reads a few header words straight from the file
/// (`OFF_LOCK => 256, ...`): each must be where the engine puts it.
#[test]
fn the_command_line_tool_reads_the_header_words_where_they_are() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../bin/hashmap-shared");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let offsets: std::collections::HashMap<_, _> = hashmap_shared::testing::header_offsets()
        .into_iter()
        .collect();
    let mut seen = 0;
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("OFF_") else {
            continue;
        };
        let (name, value) = rest.split_once("=>").expect("OFF_NAME => offset");
        let name = name.trim().to_lowercase();
        let value: usize = value
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("OFF_{name}: not a number"));
        let want = offsets.get(name.as_str()).unwrap_or_else(|| {
            panic!("OFF_{name}: no such header word in testing::header_offsets")
        });
        assert_eq!(value, *want, "OFF_{name} in bin/hashmap-shared");
        seen += 1;
    }
    assert!(seen >= 5, "the tool's offsets were found ({seen})");
}
