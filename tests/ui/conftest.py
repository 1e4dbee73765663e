def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives Debian's chromium through Playwright (scripts/install_chromium.sh)")
