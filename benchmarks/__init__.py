"""Load tools and side-by-side comparisons with Postfix and Dovecot."""
