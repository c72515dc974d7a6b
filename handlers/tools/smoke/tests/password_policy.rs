//! Generated passwords pass the real policy in its strictest valid configurations.

use keygate_core::password::{CharClass, PasswordPolicy, is_common_password};
use keygate_smoke::secrets::random_password;

#[test]
fn generated_passwords_pass_the_strictest_policies() {
    let all = vec![
        CharClass::Lower,
        CharClass::Upper,
        CharClass::Digit,
        CharClass::Symbol,
    ];
    let policies = [
        PasswordPolicy {
            min_length: 15,
            max_length: 128,
            required_classes: vec![],
        },
        PasswordPolicy {
            min_length: 64,
            max_length: 64,
            required_classes: all.clone(),
        },
        PasswordPolicy {
            min_length: 15,
            max_length: 64,
            required_classes: all,
        },
    ];
    for _ in 0..100 {
        let password = random_password().unwrap();
        assert!(!is_common_password(password.expose()));
        for policy in &policies {
            policy.check(password.expose()).unwrap();
        }
    }
}
