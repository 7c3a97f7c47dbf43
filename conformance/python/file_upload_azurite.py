"""Scenario file_upload_azurite, Python: see file_upload_flow.py."""

import file_upload_flow

if __name__ == "__main__":
    file_upload_flow.run("file_upload_azurite")
