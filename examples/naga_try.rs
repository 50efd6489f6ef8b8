fn main() {
    let src = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let m = naga::front::wgsl::parse_str(&src).map_err(|e| e.emit_to_string(&src));
    match m {
        Err(e) => println!("PARSE ERR {e}"),
        Ok(m) => {
            let r = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&m);
            println!("{:?}", r.err().map(|e| e.emit_to_string(&src)));
        }
    }
}
