from conftest import wait_idle
from test_embed import embed_photo
def test_dbg(qtbot, window, photo):
    tab = embed_photo(qtbot, window, photo)
    got = []
    tab.status.connect(got.append)
    window.statusBar().messageChanged.connect(lambda m: got.append(("bar", m)))
    tab.auto_attack.setCurrentText("jpeg:75")
    tab.auto_button.click()
    wait_idle(qtbot, window)
    print("GOT", got, tab.spin.value())
