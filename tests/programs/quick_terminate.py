"""Test-only lesson: pools terminated the instant they exist, so SIGTERM reaches workers that
are still being born (run through the real harness: python -m mpdash.harness THIS {})."""
import multiprocessing


def main(ctx, rounds=20):
    for _ in range(rounds):
        pool = multiprocessing.get_context("fork").Pool(3)
        pool.terminate()
        pool.join()
    return rounds


from mpdash.lessons import Lesson  # noqa: E402

LESSON = Lesson(id="quick-terminate", title="test only", section="7", section_title="test",
                summary="", explanation="", predict="", main=main)
