"""The rating prompt and the never-guess answer parser."""

from hypothesis import given
from hypothesis import strategies as st

from training.quality.prompt import PROMPT_VERSION, RATING_PROMPT, TRUNCATION_MARK, clip, parse_rating, render


def test_prompt_has_the_reports_slots_criteria_and_zero_policy():
    assert "{LANGUAGE}" in RATING_PROMPT and "{CONTENT}" in RATING_PROMPT
    for word in ("Readability", "Modularity", "Clarity", "Reusability", "Zero-score policy", "Rating: [[X]]"):
        assert word in RATING_PROMPT
    assert PROMPT_VERSION


def test_render_fills_slots_and_keeps_braces_in_code():
    text = render("C", "int main() { return {0}; }", 1000)
    assert "```C\nint main() { return {0}; }\n```" in text
    assert "{LANGUAGE}" not in text and "{CONTENT}" not in text


def test_clip_cuts_at_a_line_boundary_and_marks_it():
    content = "".join(f"line {i}\n" for i in range(1000))
    out = clip(content, 100)
    assert out.endswith(TRUNCATION_MARK)
    assert len(out) - len(TRUNCATION_MARK) <= 100
    assert out[: -len(TRUNCATION_MARK)] in content and not out[: -len(TRUNCATION_MARK)].endswith("\n")
    assert clip("short", 100) == "short"


def test_parse_takes_the_last_rating_and_accepts_decimals():
    assert parse_rating("Format is Rating: [[X]]... Rating: [[3]] then Rating: [[ 8.5 ]]").value == 8.5
    assert parse_rating("rating: [[0]]").value == 0.0


def test_unusable_answers_are_never_guessed():
    assert parse_rating(None).reason == "empty_answer"
    assert parse_rating("   ").reason == "empty_answer"
    assert parse_rating("I'd give it a 7/10.").reason == "unparseable_answer"
    assert parse_rating("Rating: [7]").reason == "unparseable_answer"
    assert parse_rating("Rating: [[-1]]").reason == "rating_out_of_range"
    assert parse_rating("Rating: [[10.5]]").reason == "rating_out_of_range"


@given(st.text(max_size=400))
def test_parser_never_raises_and_values_are_in_range(answer):
    rating = parse_rating(answer)
    assert (rating.value is None) != (rating.reason is None)
    if rating.value is not None:
        assert 0.0 <= rating.value <= 10.0
