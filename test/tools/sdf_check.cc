// Strict SDFormat check: loads each file given on the command line with libsdformat and
// counts unknown elements, warnings and errors as failures. Prints one line per problem,
// "<file>: <message>", and "<file>: ok" for a clean file; the exit code is the number of
// files that failed (capped at 125). Built by test/integration/test_sdformat.py:
//   g++ sdf_check.cc $(pkg-config --cflags --libs sdformat12) -o sdf_check
#include <iostream>
#include <string>

#include <sdf/Root.hh>
#include <sdf/ParserConfig.hh>

int main(int argc, char **argv)
{
  sdf::ParserConfig config;
  config.SetWarningsPolicy(sdf::EnforcementPolicy::ERR);
  config.SetUnrecognizedElementsPolicy(sdf::EnforcementPolicy::ERR);
  config.SetDeprecatedElementsPolicy(sdf::EnforcementPolicy::ERR);
  int failed = 0;
  for (int i = 1; i < argc; ++i)
  {
    const std::string path = argv[i];
    sdf::Root root;
    const sdf::Errors errors = root.Load(path, config);
    for (const auto &e : errors)
      std::cout << path << ": " << e.Message() << std::endl;
    const bool empty = root.WorldCount() == 0 && root.Model() == nullptr;
    if (empty)
      std::cout << path << ": no world and no model loaded" << std::endl;
    if (errors.empty() && !empty)
      std::cout << path << ": ok (SDF " << root.Version() << ")" << std::endl;
    else
      ++failed;
  }
  return failed > 125 ? 125 : failed;
}
