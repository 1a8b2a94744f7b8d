//! ipvsadm's command line over the RVS REST API (see `rvs_control::rvsadm`).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = rvs_control::rvsadm::run(
        args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        &rvs_control::rvsadm::Env::from_process(),
    );
    std::process::exit(code);
}
