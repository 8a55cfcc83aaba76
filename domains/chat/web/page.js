export async function render(view) { view.root.textContent = 'Chat'; }
