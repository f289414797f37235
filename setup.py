"""Package discovery: every package under hamsim/, and drivers/ and protocols/ shipped as
hamsim.drivers and hamsim.protocols (the repository layout keeps them at the top).  Discovered, not
listed by hand, so a new subpackage cannot be silently left out of a wheel."""

from setuptools import find_namespace_packages, find_packages, setup

REMAP = {"hamsim.drivers": "drivers", "hamsim.protocols": "protocols"}


def discover() -> list[str]:
    packages = find_packages(include=["hamsim", "hamsim.*"])
    for name, where in REMAP.items():
        # namespace discovery also lists data folders (drivers/sims: the pyvisa-sim definitions)
        packages += [name] + [f"{name}.{sub}" for sub in find_namespace_packages(where, exclude=["*__pycache__*"])]
    return sorted(packages)


if __name__ == "__main__":
    setup(packages=discover(), package_dir=REMAP)
