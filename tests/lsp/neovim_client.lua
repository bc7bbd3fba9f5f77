-- Headless Neovim as an LSP client of `npc lsp`: open the spec in $NPC_SPEC, attach the server, wait for its
-- diagnostics and write them to $NPC_OUT, one per line: "line:col-end_line:end_col severity message" (0-based).
-- Uses vim.lsp.start_client, which Debian's Neovim (0.7) has; editors/README.md shows the newer vim.lsp.start.
local spec, out = os.getenv("NPC_SPEC"), os.getenv("NPC_OUT")
vim.cmd("edit " .. vim.fn.fnameescape(spec))
local client = vim.lsp.start_client({
  name = "npc",
  cmd = { os.getenv("NPC_PYTHON"), "-m", "npc", "lsp" },
  root_dir = vim.fn.fnamemodify(spec, ":h"),
})
vim.lsp.buf_attach_client(0, client)
local got = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local lines = {}
if not got then
  table.insert(lines, "timeout: no diagnostics")
end
for _, d in ipairs(vim.diagnostic.get(0)) do
  table.insert(lines, string.format("%d:%d-%d:%d %d %s", d.lnum, d.col, d.end_lnum, d.end_col, d.severity, d.message))
end
vim.fn.writefile(lines, out)
vim.lsp.stop_client(client)
vim.wait(5000, function() return vim.lsp.get_client_by_id(client) == nil end, 50)
vim.cmd("qa!")
