"""Hypothesis strategies shared by the token tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

RESERVED = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
extra_claims: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda name: name not in RESERVED),
    json_values,
    max_size=6,
)
subjects = st.text(min_size=1, max_size=40)
token_ids = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126),
    min_size=1,
    max_size=40,
)
lifetimes = st.integers(min_value=1, max_value=3600)

arbitrary_text = st.text(max_size=200) | st.from_regex(
    r"\A[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}\.[A-Za-z0-9_\-]{0,40}\Z"
)
jwk_like: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["EC", "OKP", "RSA", "oct", ""]) | json_values,
        "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "X25519"]) | json_values,
        "x": st.text(max_size=50) | json_values,
        "y": st.text(max_size=50) | json_values,
        "n": st.text(max_size=50),
        "e": st.sampled_from(["AQAB", ""]) | st.text(max_size=5),
        "alg": json_values,
        "kid": json_values,
    },
)
