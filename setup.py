"""ament_python set-up of ilrs_robots: installs the package, launch/, config/ and scripts."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "ilrs_robots"
HERE = Path(__file__).resolve().parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install `folder` recursively under share/<package>/."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return list(entries.items())


NODES = {
    "base_driver": "ilrs_robots.nodes.base_driver:main",
    "sim": "ilrs_robots.nodes.sim_node:main",
    "camera_driver": "ilrs_robots.nodes.camera_driver:main",
    "vc0706_camera": "ilrs_robots.nodes.vc0706_camera:main",
    "construction": "ilrs_robots.nodes.construction:main",
    "navigator": "ilrs_robots.nodes.navigator:main",
    "robot_description_publisher": "ilrs_robots.nodes.robot_description_publisher:main",
    "localization": "ilrs_robots.nodes.localization:main",
    "terrain_mapper": "ilrs_robots.nodes.terrain_mapper:main",
    "radiation_sensor": "ilrs_robots.nodes.radiation_sensor:main",
    "radiation_mapper": "ilrs_robots.nodes.radiation_mapper:main",
    "inspection": "ilrs_robots.nodes.inspection:main",
    "gazebo_base": "ilrs_robots.nodes.gazebo_base:main",
    "motion_commands": "ilrs_robots.nodes.motion_commands:main",
    "ground_console": "ilrs_robots.nodes.console:main",
}
TOOLS = {
    "ilrs": "ilrs_robots.runner.cli:main",
    "roboclaw_emulator": "ilrs_robots.sim.devices.roboclaw_emulator:main",
    "vc0706_emulator": "ilrs_robots.sim.devices.vc0706_emulator:main",
    "printer_emulator": "ilrs_robots.sim.devices.printer_emulator:main",
    "gmc_emulator": "ilrs_robots.sim.devices.gmc_emulator:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.console": ["static/*"]},  # the console's page, served by the node
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ILRS robotics team",
    maintainer_email="robots@ilrs-station.org",
    description="ROS 2 control stack for the robots of a lunar research station",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            *(f"{name} = {target}" for name, target in {**NODES, **TOOLS}.items()),
        ],
    },
)
