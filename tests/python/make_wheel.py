"""Write a minimal pure-Python wheel: make_wheel.py OUT_DIR NAME VERSION [SALT].

The wheel holds one module NAME.py (whose text includes SALT, so two wheels
of one version can differ in digest) and NAME-VERSION.dist-info/ with
METADATA, WHEEL and RECORD, which is all pip needs to install it.
"""
import base64
import hashlib
import sys
import zipfile

out, name, version = sys.argv[1:4]
salt = sys.argv[4] if len(sys.argv) > 4 else ""
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}.py": f"VERSION = {version!r}\nSALT = {salt!r}\n",
    f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: mvault-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{dist}/RECORD,,")
files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
wheel = f"{out}/{name}-{version}-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as z:
    for path, text in files.items():
        # A fixed date: the same inputs give the same wheel bytes.
        info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
        z.writestr(info, text)
print(wheel)
