//! `keygate`: the control-plane server. Built out in the control-plane issue.

fn main() {
    println!("keygate control plane: not built yet");
}
