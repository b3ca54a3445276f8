"""Tests for storage.text_fold: accent-, case- and đ-insensitive folding for search.

Speed (CPython 3.11, one core of the dev container, best of 5 x 50 runs, timeit):
    fold_for_search on the UDHR text (derived/vie.utf8.*.txt, 15-18 kB each):
        NFC 36 MB/s, NFD 60 MB/s, as published (mixed) 44 MB/s; the Hán-Nôm UDHR page 31 MB/s.
    A plain ``str.translate`` over the whole decomposed text, without the str.replace fast path
    for Vietnamese marks, gave 14 MB/s on the NFC text; ASCII-only text folds at about 150 MB/s.
    So a 100 kB message body folds in about 3 ms.
The corpus tests need ../shared/corpus (next to the repository) and are skipped without it.
"""

import random
import unicodedata
from pathlib import Path

import pytest

from storage.text_fold import exact_query, fold_exact, fold_for_search, fold_query

DERIVED = Path(__file__).resolve().parents[2] / "shared/corpus/vietnamese-text/derived"
needs_corpus = pytest.mark.skipif(
    not DERIVED.is_dir(), reason=f"Vietnamese corpus not found at {DERIVED}"
)


def reference_fold(text: str) -> str:
    """The folding rule written as a plain per-character loop, to check the fast paths."""
    kept = []
    for char in unicodedata.normalize("NFD", text.casefold()):
        category = unicodedata.category(char)
        if category in ("Mn", "Cf", "Cs") or (category == "Cc" and not char.isspace()):
            continue
        kept.append("d" if char in "đĐðÐ" else char)
    return " ".join("".join(kept).split())


def read_derived(name: str) -> str:
    return (DERIVED / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("VĂN BẢN", "van ban"),
        ("văn bản", "van ban"),
        ("van ban", "van ban"),
        ("Đường", "duong"),
        ("đường Đ", "duong d"),
        ("hòa", "hoa"),
        ("hoà", "hoa"),
        ("Cộng hòa Xã hội Chủ nghĩa Việt Nam", "cong hoa xa hoi chu nghia viet nam"),
        ("Sở KH&CN tỉnh Thừa Thiên Huế", "so kh&cn tinh thua thien hue"),
        ("ƯỚC LƯỢNG Ơn", "uoc luong on"),
        # Mis-decoded windows-1258 (read as windows-1252) shows eth instead of Đ.
        ("Ðà Nẵng", "da nang"),
        ("", ""),
    ],
)
def test_vietnamese_folds_to_plain_lowercase(text: str, folded: str) -> None:
    assert fold_for_search(text) == folded


def test_nfc_nfd_and_both_tone_placements_fold_equal() -> None:
    for word in ("văn bản", "Đường", "hòa", "thủy", "Nguyễn Ngọc Thành"):
        nfc = unicodedata.normalize("NFC", word)
        nfd = unicodedata.normalize("NFD", word)
        assert nfc != nfd or word.isascii()
        assert fold_for_search(nfc) == fold_for_search(nfd) == fold_for_search(word.upper())
    # Old and new tone placement are different letters, not normalisation variants.
    assert "hòa" != "hoà" and "thủy" != "thuỷ"
    assert fold_for_search("hòa") == fold_for_search("hoà") == "hoa"
    assert fold_for_search("thủy") == fold_for_search("thuỷ") == "thuy"


def test_windows_1258_style_text_with_combining_tones() -> None:
    # Precomposed base letter + combining tone mark, as windows-1258 produces.
    mixed = "Vi\u00ea\u0323t Nam \u0110\u01b0\u01a1\u0300ng"
    assert unicodedata.normalize("NFC", mixed) != mixed
    assert fold_for_search(mixed) == "viet nam duong"


def test_whitespace_runs_collapse_and_ends_are_stripped() -> None:
    text = "  Văn\t\tbản \r\n số\u00a0\u00a012\u2003/QĐ\u2028 \x1c "
    assert fold_for_search(text) == "van ban so 12 /qd"


def test_controls_surrogates_and_format_characters_are_dropped() -> None:
    hostile = "v\x00ă\x07n\x1b \ud800b\udfffả\u200bn\u00ad\ufeff\u200d!\x7f"
    folded = fold_for_search(hostile)
    assert folded == "van ban!"
    assert folded.encode("utf-8") == b"van ban!"


def test_output_always_encodes_as_utf8_without_nul() -> None:
    rng = random.Random(20250701)
    for _ in range(200):
        text = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(0, 40)))
        folded = fold_for_search(text)
        folded.encode("utf-8")  # raises on a surrogate
        assert "\x00" not in folded
        assert folded == folded.strip()
        assert "  " not in folded


def test_other_scripts_are_casefolded_and_lose_only_nonspacing_marks() -> None:
    assert fold_for_search("Привет МИР") == "привет мир"
    assert fold_for_search("Straße ΣΟΦΟΣ") == "strasse σοφοσ"
    assert fold_for_search("Ñandú ÅNGSTRÖM İstanbul") == "nandu angstrom istanbul"
    # Hán-Nôm has no case and no marks: unchanged.
    assert fold_for_search("世界人權宣言") == "世界人權宣言"
    # Spacing marks (Mc) stay; the nonspacing virama (Mn) goes.
    assert fold_for_search("क्षि") == "कषि"


def test_fast_paths_agree_with_the_reference_rule() -> None:
    rng = random.Random(7)
    samples = [
        "Tiếng Việt “có dấu” – và đ",  # sparse non-ASCII after folding
        "Приве́т, ми́р! " * 20,  # dense non-ASCII
        "\u0301\u0301a\u0303",  # marks with no base
    ]
    for _ in range(300):
        samples.append("".join(chr(rng.randrange(0, 0x3000)) for _ in range(30)))
        samples.append(
            "".join(rng.choice("aăâđeêioôơuưy \u0300\u0301\u0323Đ—“") for _ in range(30))
        )
    for text in samples:
        assert fold_for_search(text) == reference_fold(text), repr(text)


def test_folding_is_idempotent_for_every_bmp_character() -> None:
    for code_point in range(0x10000):
        char = chr(code_point)
        once = fold_for_search(char)
        assert fold_for_search(once) == once, hex(code_point)


@pytest.mark.parametrize(
    ("query", "folded"),
    [
        ("Văn Bản", "van ban"),
        (" bản", " ban"),
        ("bản\t\n", "ban "),
        ("  VĂN   BẢN  ", " van ban "),
        ("\t", " "),
        ("", ""),
        ("\u0301\u200b", ""),
        ("Đ", "d"),
    ],
)
def test_fold_query_keeps_one_space_at_the_edges(query: str, folded: str) -> None:
    assert fold_query(query) == folded


def test_folded_query_is_found_in_folded_text() -> None:
    indexed = fold_for_search("Về việc ban hành QUY CHẾ quản lý văn bản điện tử")
    for query in ("VAN BAN", "văn bản", "van ban dien tu", "Quy chế", "điện", "ề việ"):
        assert fold_query(query) in indexed
    assert fold_query("văn bản giấy") not in indexed


@needs_corpus
def test_udhr_nfc_nfd_and_published_forms_fold_identically() -> None:
    nfc = read_derived("vie.utf8.nfc.txt")
    nfd = read_derived("vie.utf8.nfd.txt")
    published = read_derived("vie.utf8.as-published.txt")
    assert len({nfc, nfd, published}) == 3
    folded = fold_for_search(nfc)
    assert fold_for_search(nfd) == folded
    assert fold_for_search(published) == folded
    assert folded.startswith(
        "tuyen ngon toan the gioi ve nhan quyen cua lien hop quoc loi noi dau "
        "voi nhan thuc rang: viec thua nhan nhan pham von co,"
    )
    # Vietnamese folds entirely to ASCII; the text is one line after whitespace folding.
    assert folded.isascii()
    assert folded == reference_fold(nfc)
    assert fold_for_search(folded) == folded


def test_ascii_controls_are_removed_on_every_path() -> None:
    # PostgreSQL text columns reject NUL: an ASCII-only or mostly-ASCII text must lose its
    # controls too, not only text that goes through the translate table.
    assert fold_for_search("a\x00b\x01c\x7fd") == "abcd"
    assert fold_for_search("Đ\x00ường\x1b x") == "duong x"
    assert fold_for_search("plain \x00 ascii with \u2019 quote") == "plain ascii with \u2019 quote"


def test_the_bytes_path_for_ascii_equals_the_rule_on_every_space_and_control() -> None:
    """ASCII text is folded through bytes (translate, collapse double spaces): every ASCII
    whitespace and control character, in runs and at both ends, gives the rule's result."""
    alphabet = [chr(code) for code in range(128)] + ["  ", "\r\n", "\t \x1c"]
    rng = random.Random(20261124)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert fold_for_search(text) == reference_fold(text), repr(text)
        vietnamese = "Đường " + text + " phố"  # folds to ASCII, then the same path
        assert fold_for_search(vietnamese) == reference_fold(vietnamese), repr(vietnamese)


# --- exact diacritics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "exact"),
    [
        (["họp", "HỌP", unicodedata.normalize("NFD", "họp")], "họp"),
        (["hộp", "Hộp"], "hộp"),
        (["Đồng chí", "đồng chí", unicodedata.normalize("NFD", "ĐỒNG CHÍ")], "đồng chí"),
        (["hoà", "hòa", "HOÀ", unicodedata.normalize("NFD", "hoà")], "hòa"),
        (["thuý", "thúy", "THUÝ"], "thúy"),
        (["hoè", "hòe"], "hòe"),
        (["Ðà Nẵng"], "đà nẵng"),  # eth of a mis-decoded Đ
    ],
)
def test_exact_fold_ignores_case_normalisation_and_tone_placement(
    variants: list[str], exact: str
) -> None:
    for variant in variants:
        assert fold_exact(variant) == exact, variant
        assert exact_query(variant) == exact, variant


def test_exact_query_is_none_without_diacritics() -> None:
    for key in ("hop", "DONG CHI", "", "   ", "дом", "Straße"):
        assert exact_query(key) is None, key
    assert exact_query(" họp ") == " họp "  # ends kept, as fold_query keeps them


def test_exact_fold_is_empty_without_diacritics_and_drops_controls() -> None:
    assert fold_exact("plain ascii text") == ""
    assert fold_exact("Straße") == ""  # casefolds to ASCII: no key with diacritics matches
    assert fold_exact("v\x00ă\u00adn  \n bản\ud800") == "văn bản"


def test_exact_keys_are_found_in_exact_text_as_folded_keys_in_folded_text() -> None:
    text = "Cộng hoà xã hội, Thuý và đồng chí Hòa"
    for key in ("hoà xã", "Hòa xã", "thúy và", "ĐỒNG CHÍ hoà", "cộng"):
        exact = exact_query(key)
        assert exact is not None and exact in fold_exact(text), key
        assert fold_query(key) in fold_for_search(text), key
    assert exact_query("hộp") == "hộp" and "hộp" not in fold_exact("Cuộc họp")


@needs_corpus
def test_udhr_forms_fold_exactly_alike() -> None:
    nfc = fold_exact(read_derived("vie.utf8.nfc.txt"))
    assert fold_exact(read_derived("vie.utf8.nfd.txt")) == nfc
    assert fold_exact(read_derived("vie.utf8.as-published.txt")) == nfc
    assert "hòa bình" in nfc and "nhân phẩm" in nfc
