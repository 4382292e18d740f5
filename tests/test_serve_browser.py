"""The page in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): open a
photo, paint a stroke, fill, download; undo and redo; a corrupt file. Skipped when Chromium is absent,
except where NPSYNTH_EXPECT_BROWSER=1 (CI): there a missing browser is a failure."""
import base64
import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from serve_helpers import SIDE, photo_array, require_server_packages, serving, shared_engine

require_server_packages()

CHROMIUM = os.environ.get("NPSYNTH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NPSYNTH_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 60  # the longest any step may take: a page load, a tiny fill


def missing_browser():
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def driver():
    why = missing_browser()
    if why:
        if os.environ.get("NPSYNTH_EXPECT_BROWSER") == "1":
            pytest.fail(f"NPSYNTH_EXPECT_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,700", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_script_timeout(WAIT_S)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def page_url():
    from npsynth_ext.serve.app import create_app

    with serving(create_app(shared_engine(), queue_size=2)) as url:
        yield url + "/"


@pytest.fixture
def photo_file(tmp_path):
    photo = photo_array()
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    return path, photo


def by_id(driver, test_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def wait_for(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def open_photo(driver, url, path):
    driver.get(url)
    by_id(driver, "file-input").send_keys(str(path))
    wait_for(driver, lambda d: d.execute_script("return state.photo !== null"), "the photo to open")


def photo_to_screen(driver, x, y):
    """Offsets from the canvas's centre (what Selenium's pointer moves take) of photo pixel (x, y)."""
    view = driver.execute_script("return state.view")
    rect = by_id(driver, "canvas").rect
    return (round(view["x"] + x * view["scale"] - rect["width"] / 2),
            round(view["y"] + y * view["scale"] - rect["height"] / 2))


def paint(driver, start, end):
    """A brush stroke from photo pixel `start` to `end`."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = by_id(driver, "canvas")
    (x0, y0), (x1, y1) = photo_to_screen(driver, *start), photo_to_screen(driver, *end)
    steps = 8
    chain = ActionChains(driver, duration=20).move_to_element_with_offset(canvas, x0, y0).click_and_hold()
    for i in range(1, steps + 1):
        chain.move_to_element_with_offset(canvas, x0 + (x1 - x0) * i // steps, y0 + (y1 - y0) * i // steps)
    chain.release().perform()


def shown_pixel(driver, x, y):
    """The RGB the canvas shows at photo pixel (x, y)."""
    sx, sy = photo_to_screen(driver, x, y)
    return driver.execute_script("""
        const c = arguments[0], dpr = window.devicePixelRatio || 1;
        const d = c.getContext('2d').getImageData(Math.round((c.clientWidth / 2 + arguments[1]) * dpr),
                                                  Math.round((c.clientHeight / 2 + arguments[2]) * dpr), 1, 1).data;
        return [d[0], d[1], d[2]];""", by_id(driver, "canvas"), sx, sy)


def settle(driver):
    """Wait until the page has drawn its latest change (it draws on the next animation frame)."""
    driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")


def downloaded(driver):
    """The bytes behind the download link."""
    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0].href).then(r => r.arrayBuffer()).then(buf => {
            let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); done(btoa(s));
        }).catch(e => done('error: ' + e));""", by_id(driver, "download"))
    assert not data.startswith("error"), data
    return base64.b64decode(data)


def distance_to_segment(points, a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)


def test_paint_fill_and_download(driver, page_url, photo_file):
    path, photo = photo_file
    open_photo(driver, page_url, path)
    assert by_id(driver, "download").get_attribute("href") is None
    size = int(by_id(driver, "brush-size").get_attribute("value"))
    start, end = (30, 48), (66, 48)
    paint(driver, start, end)
    by_id(driver, "fill-button").click()
    wait_for(driver, lambda d: by_id(d, "progress").get_attribute("data-state") in ("done", "failed"),
             "the fill to end")
    assert by_id(driver, "error").text == ""
    assert by_id(driver, "progress").get_attribute("data-state") == "done"
    link = by_id(driver, "download")
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "photo_filled.png"
    result = Image.open(io.BytesIO(downloaded(driver)))
    assert result.format == "PNG" and result.size == (SIDE, SIDE)
    changed = (np.asarray(result.convert("RGB")) != photo).any(-1)
    assert changed.sum() > 50, "the fill changed (almost) nothing"
    ys, xs = np.nonzero(changed)
    # Every changed pixel lies under the stroke: within its radius, plus a pixel of anti-aliasing.
    far = distance_to_segment(np.stack([xs, ys], 1) + 0.5, start, end).max()
    assert far <= size / 2 + 1.5, f"a pixel {far:.1f} px from the stroke changed (brush radius {size / 2})"


def test_fill_again_on_the_result(driver, page_url, photo_file):
    path, photo = photo_file
    open_photo(driver, page_url, path)
    for start, end in (((20, 20), (40, 20)), ((60, 70), (80, 70))):
        paint(driver, start, end)
        driver.switch_to.active_element.send_keys("\n")  # Enter fills
        wait_for(driver, lambda d: by_id(d, "progress").get_attribute("data-state") in ("done", "failed"),
                 "the fill to end")
        assert by_id(driver, "progress").get_attribute("data-state") == "done", by_id(driver, "error").text
    changed = (np.asarray(Image.open(io.BytesIO(downloaded(driver))).convert("RGB")) != photo).any(-1)
    assert changed[12:29, 12:49].any() and changed[62:79, 52:89].any(), "the second fill lost the first"


def test_undo_and_redo_a_stroke(driver, page_url, photo_file):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    path, photo = photo_file
    open_photo(driver, page_url, path)
    settle(driver)
    before = shown_pixel(driver, 48, 30)
    paint(driver, (30, 30), (66, 30))
    settle(driver)
    painted = shown_pixel(driver, 48, 30)
    assert painted != before, "the stroke does not show"
    assert by_id(driver, "undo").is_enabled() and not by_id(driver, "redo").is_enabled()

    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    settle(driver)
    assert shown_pixel(driver, 48, 30) == before, "undo left the stroke"
    assert not by_id(driver, "undo").is_enabled() and not by_id(driver, "fill-button").is_enabled()

    by_id(driver, "redo").click()
    settle(driver)
    assert shown_pixel(driver, 48, 30) == painted, "redo did not bring the stroke back"


def test_brush_keys_eraser_and_zoom(driver, page_url, photo_file):
    from selenium.webdriver.common.action_chains import ActionChains, ScrollOrigin

    path, photo = photo_file
    open_photo(driver, page_url, path)
    size = by_id(driver, "brush-size")
    start = int(size.get_attribute("value"))
    body = driver.find_element("tag name", "body")
    body.send_keys("]")
    assert int(size.get_attribute("value")) > start
    body.send_keys("[[")
    assert int(size.get_attribute("value")) < start

    settle(driver)
    before = shown_pixel(driver, 48, 30)
    paint(driver, (30, 30), (66, 30))
    settle(driver)
    assert shown_pixel(driver, 48, 30) != before
    body.send_keys("e]]]")  # the eraser, wider than the brush was: an anti-aliased edge is only partly erased
    paint(driver, (30, 30), (66, 30))
    settle(driver)
    assert shown_pixel(driver, 48, 30) == before, "the eraser left paint"

    def wheel(amount):
        before = driver.execute_script("return state.view.scale")
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(by_id(driver, "canvas")), 0, amount).perform()
        return driver.execute_script("return state.view.scale") / before

    assert wheel(-300) > 1, "the wheel did not zoom in"
    assert wheel(300) < 1, "the wheel did not zoom out"


def test_a_photo_over_the_upload_limit_shows_an_error(driver, tmp_path):
    """The server's 413, answered before the upload is read, reaches the page as its message."""
    from npsynth_ext.serve.app import create_app

    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 300, 3), np.uint8)).save(path)  # ~270 kB
    with serving(create_app(shared_engine(), max_upload_bytes=100_000)) as url:
        open_photo(driver, url + "/", path)
        paint(driver, (100, 150), (200, 150))
        by_id(driver, "fill-button").click()
        wait_for(driver, lambda d: by_id(d, "progress").get_attribute("data-state") != "running", "the answer")
        error = by_id(driver, "error")
        assert error.is_displayed() and "larger than this server's limit" in error.text, error.text


def test_corrupt_file_shows_an_error(driver, page_url, tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not the rest of a PNG file")
    driver.get(page_url)
    error = by_id(driver, "error")
    assert not error.is_displayed()
    by_id(driver, "file-input").send_keys(str(path))
    wait_for(driver, lambda d: error.is_displayed() and error.text, "an error message")
    assert "broken.png" in error.text and "not an image" in error.text


@pytest.mark.skipif(not os.environ.get("NPSYNTH_SCREENSHOT"), reason="set NPSYNTH_SCREENSHOT=PATH.png to take it")
def test_screenshot(driver, page_url, tmp_path):
    """docs/serve.png: the demo photo with its right mast filled away, and the left one painted over next."""
    from npsynth_ext.fill_command import DEMO_IMAGE

    shutil.copy(DEMO_IMAGE, tmp_path / "demo.jpg")
    driver.set_window_size(1100, 820)
    open_photo(driver, page_url, tmp_path / "demo.jpg")
    paint(driver, (410, 136), (410, 226))
    by_id(driver, "fill-button").click()
    wait_for(driver, lambda d: by_id(d, "progress").get_attribute("data-state") == "done", "the fill to end")
    paint(driver, (113, 140), (113, 226))
    settle(driver)
    driver.save_screenshot(os.environ["NPSYNTH_SCREENSHOT"])
