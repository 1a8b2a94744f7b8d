//! `rvsadm-restore`: clear the table and restore the rules on stdin in one atomic change, as ipvsadm-restore runs `ipvsadm -C` then `ipvsadm -R`.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = rvs_control::rvsadm::run_restore(
        args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        &rvs_control::rvsadm::Env::from_process(),
    );
    std::process::exit(code);
}
