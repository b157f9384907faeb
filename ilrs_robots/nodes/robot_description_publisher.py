"""robot_description_publisher: the rover's URDF on `robot_description` and its transforms.

What `robot_state_publisher` does on a ROS machine, for machines with nothing but the pip wheels
(and in the stacks, so both kinds of machine run the same thing): the URDF, generated from the
rover's parameter file (`rover_params`, see sim/robot_model.py) or given whole as `urdf`, is
published once on `robot_description` (std_msgs/String, reliable, transient local: late joiners
such as RViz get it), its fixed joints on `/tf_static`, and its wheel joints on `/tf` from the
base driver's `joint_states`. Every frame gets `frame_prefix` (e.g. `rover2/`), so that two
robots' frames never collide on the global /tf.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED
from ilrs_robots.resources import config_path
from ilrs_robots.sim.model import RoverSpec
from ilrs_robots.sim.robot_model import Joint, joints_of, prefixed, rover_urdf


def urdf_from_parameter_file(path: str | Path) -> str:
    """The rover's URDF from a base driver parameter file (geometry and wheel joint names)."""
    params = yaml.safe_load(Path(path).read_text())
    if not isinstance(params, dict) or not params:
        raise ValueError("not a ROS parameter file")
    base = next(iter(params.values()))
    base = base.get("ros__parameters", base) if isinstance(base, dict) else {}
    return rover_urdf(RoverSpec.from_params(params), base.get("wheels"))


class RobotDescriptionPublisher(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("robot_description_publisher")
        d = self
        rover_file = declare(d, "rover_params", str(config_path("params/rover_base.yaml")),
                             "Base driver parameter file the URDF is generated from",
                             read_only=True)
        urdf = declare(d, "urdf", "", "A whole URDF document to publish instead of the "
                       "generated one (empty: generate)", read_only=True)
        self.prefix = declare(d, "frame_prefix", "", "Put before every frame name, e.g. "
                              "'rover2/' (robot_state_publisher's frame_prefix)",
                              lambda v: v == "" or (v.endswith("/") and not v.startswith("/")),
                              "empty or like 'rover2/'", read_only=True)
        try:
            self.urdf = urdf or urdf_from_parameter_file(rover_file)
        except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
            raise ParameterError("rover_params", f"cannot give a URDF: {exc}") from exc
        try:
            joints = joints_of(self.urdf)
        except ValueError as exc:
            raise ParameterError("urdf" if urdf else "rover_params",
                                 f"is not a usable URDF: {exc}") from exc
        self.fixed = [j for j in joints if j.kind == "fixed"]
        self.moving = {j.name: j for j in joints if j.kind in ("continuous", "revolute")}
        self.description_pub = self.create_publisher(String, "robot_description", LATCHED)
        self.description_pub.publish(String(data=self.urdf))
        self.static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.static_pub.publish(TFMessage(transforms=[
            self._transform(j, 0.0, self.get_clock().now().to_msg()) for j in self.fixed]))
        self.tf_pub = self.create_publisher(TFMessage, "/tf", 50)
        self.create_subscription(JointState, "joint_states", self._on_joints, 10)
        self.get_logger().info(f"robot_description: {len(joints)} joints "
                               f"({len(self.fixed)} fixed), frame prefix '{self.prefix}'")

    def _transform(self, joint: Joint, position: float, stamp: object) -> TransformStamped:
        t = TransformStamped()
        t.header.stamp = stamp
        t.header.frame_id = prefixed(joint.parent, self.prefix)
        t.child_frame_id = prefixed(joint.child, self.prefix)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in joint.xyz)
        q = t.transform.rotation
        q.x, q.y, q.z, q.w = joint.quaternion(position)
        return t

    def _on_joints(self, msg: JointState) -> None:
        tfs = [self._transform(self.moving[name], float(pos), msg.header.stamp)
               for name, pos in zip(msg.name, msg.position, strict=False)
               if name in self.moving]
        if tfs:
            self.tf_pub.publish(TFMessage(transforms=tfs))


def main(args: list[str] | None = None) -> None:
    """Console script `robot_description_publisher`."""
    raise SystemExit(run_node(RobotDescriptionPublisher, args))


if __name__ == "__main__":
    main()
