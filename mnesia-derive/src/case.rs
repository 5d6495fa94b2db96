//! Name conversions: the table name from the struct's, the constant names from the fields'.

/// `UserProfile` -> `user_profile`, `HTTPServer` -> `http_server`.
pub(crate) fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if prev_lower || (prev_upper && next_lower) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `user_id` -> `USER_ID`, `userId` -> `USER_ID`.
pub(crate) fn screaming(name: &str) -> String {
    snake(name).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(snake("User"), "user");
        assert_eq!(snake("UserProfile"), "user_profile");
        assert_eq!(snake("HTTPServer"), "http_server");
        assert_eq!(snake("Item2Tag"), "item2_tag");
        assert_eq!(screaming("user_id"), "USER_ID");
        assert_eq!(screaming("userId"), "USER_ID");
        assert_eq!(screaming("age"), "AGE");
    }
}
