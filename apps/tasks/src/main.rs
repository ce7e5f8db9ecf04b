//! `tasks [--addr HOST:PORT] [--database-url URL]`: serves the tasks app.

fn main() {
    let mut addr = "127.0.0.1:8081".to_owned();
    let mut database_url = "sqlite://tasks.db".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--addr" => &mut addr,
            "--database-url" => &mut database_url,
            "-h" | "--help" => {
                println!("tasks [--addr HOST:PORT (default 127.0.0.1:8081)] [--database-url sqlite://PATH | postgres://... (default sqlite://tasks.db)]");
                return;
            }
            other => fail(&format!("unknown argument {other:?}; see --help")),
        };
        *slot = args.next().unwrap_or_else(|| fail(&format!("{arg} needs a value")));
    }
    bgsync_server::serve::init_logging().unwrap_or_else(|e| fail(&e));
    let addr = addr.parse().unwrap_or_else(|_| fail(&format!("--addr {addr:?} is not HOST:PORT")));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    if let Err(e) = runtime.block_on(tasks::serve(addr, &database_url)) {
        fail(&e.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tasks: {message}");
    std::process::exit(2)
}
